-- A municipality's own response-centre figures are merged from its own alarm events of the
-- months asked for (FigureStore::own_alarm_records). The only index that served that read was
-- events (type, ts): every municipality's alarm events of the year, each looked up in the
-- table for its municipality, so one small municipality's figures cost as much as the
-- region's events (about 1.2 million at national size). Partial: only alarm events, a small
-- share of the events, are in it.
CREATE INDEX events_own_alarms ON events (municipality, ts) WHERE alarm IS NOT NULL;
