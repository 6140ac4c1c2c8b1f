"""Prints the messages aiosmtpd's Mailbox handler stored in a maildir as a JSON list, each with
its decoded subject, recipients, Message-ID and text body (Python's own e-mail parser)."""

import email
import email.policy
import json
import mailbox
import sys

messages = []
for key, message in mailbox.Maildir(sys.argv[1], factory=None, create=False).iteritems():
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    messages.append(
        {
            "subject": str(parsed["subject"]),
            "to": str(parsed["to"]),
            "from": str(parsed["from"]),
            "message_id": str(parsed["message-id"]),
            "body": parsed.get_body(preferencelist=("plain",)).get_content(),
        }
    )
print(json.dumps(messages, ensure_ascii=False))
