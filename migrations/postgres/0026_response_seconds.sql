-- The region's response-centre figures summed every distinct response time of the year to
-- the millisecond (response_times: about one row per answered alarm at national size, so the
-- first call grew with the fleet). Counted per whole second here, per month and kind across
-- municipalities, a year is a few thousand rows whatever the fleet; the figures then read to
-- the millisecond only the seconds holding the median, the 90th percentile and the maximum
-- (vft_domain::response::seconds_read_exactly), from response_times_by_ms. A second is the
-- response time rounded up (vft_domain::response::response_second), so "within 60 s" is
-- "second <= 60". Kept by ingest beside response_times, in the same transaction.
CREATE TABLE response_seconds (
    month   BIGINT  NOT NULL,
    kind    TEXT    NOT NULL,
    second  BIGINT  NOT NULL,
    alarms  BIGINT  NOT NULL,
    PRIMARY KEY (month, kind, second)
);

INSERT INTO response_seconds (month, kind, second, alarms)
SELECT month, kind, second, SUM(alarms)
FROM (
    SELECT month, kind,
           response_ms / 1000 + CASE WHEN response_ms % 1000 > 0 THEN 1 ELSE 0 END AS second,
           alarms
    FROM response_times
) AS by_second
GROUP BY month, kind, second
HAVING SUM(alarms) <> 0;
