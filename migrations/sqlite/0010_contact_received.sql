-- When vft received the device's newest contact, by vft's clock. A gateway's last will is
-- timed by vft's clock too, so the two compare even when the device's own clock runs ahead.
ALTER TABLE devices ADD COLUMN contact_received_at INTEGER;
