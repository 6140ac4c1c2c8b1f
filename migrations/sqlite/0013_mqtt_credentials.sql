-- Gateway credentials for vft's embedded MQTT listener (`vft mqtt-credential create`). Only an
-- Argon2id hash of the password is kept (a PHC string, which names its own parameters). A
-- credential may publish under {prefix}/{vendor}/… (gateway NULL) or only under
-- {prefix}/{vendor}/{gateway}/…, and on that vendor's adapter topics. A revoked credential
-- keeps its row (who held it, until when); creating one with the same username replaces it.
CREATE TABLE mqtt_credentials (
    username      TEXT   PRIMARY KEY,
    password_hash TEXT   NOT NULL,
    vendor        TEXT   NOT NULL,
    gateway       TEXT,
    label         TEXT,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
