-- A municipality's own alarms are now read from the alarm state (decision 0026): its alarms
-- whose events all come from it, and its own merge of those shared with others
-- (own_alarm_states), each an index range by municipality and origin. Its alarm events are no
-- longer merged per request, so the partial index of migration 0027 that found them goes
-- (one index write less per alarm event).
CREATE INDEX alarms_municipality_origin ON alarms (municipality, origin_ts);
DROP INDEX events_own_alarms;
