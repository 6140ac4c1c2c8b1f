"""Prints the messages aiosmtpd's Mailbox handler stored in a maildir as a JSON list, each with
its decoded subject, recipients, Message-ID, text body and attachments (Python's own e-mail
parser). With a second argument, each attachment is also written to that directory."""

import email
import email.policy
import hashlib
import json
import mailbox
import os
import sys

save_to = sys.argv[2] if len(sys.argv) > 2 else None
messages = []
for key, message in mailbox.Maildir(sys.argv[1], factory=None, create=False).iteritems():
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    attachments = []
    for part in parsed.iter_attachments():
        data = part.get_content()
        if isinstance(data, str):
            data = data.encode("utf-8")
        name = part.get_filename()
        attachments.append(
            {
                "filename": name,
                "content_type": part.get_content_type(),
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        if save_to and name:
            with open(os.path.join(save_to, f"{key}-{name}"), "wb") as out:
                out.write(data)
    body = parsed.get_body(preferencelist=("plain",))
    messages.append(
        {
            "key": key,
            "subject": str(parsed["subject"]),
            "to": str(parsed["to"]),
            "from": str(parsed["from"]),
            "message_id": str(parsed["message-id"]),
            "body": body.get_content() if body is not None else "",
            "attachments": attachments,
        }
    )
print(json.dumps(messages, ensure_ascii=False))
