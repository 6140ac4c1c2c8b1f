-- Why a unit left service (DESIGN.md, Contract 1: `reason` on `decommissioned`; NULL: not
-- given). Change attribution splits "decommissioned" by it.
ALTER TABLE events ADD COLUMN reason TEXT;
