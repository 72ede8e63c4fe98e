-- 0006: room on each page of the tables the recorder updates in place, so that an update that
-- changes no indexed column (a pod's phase, start, restarts; its compact state) is a HOT update:
-- the new row version goes on the same page and no index is touched. With full pages (the
-- default fillfactor of 100) every such update wrote a new entry into each of the pods table's
-- eight indexes. Applies to pages written from now on; existing pages fill up as they were.
ALTER TABLE pods SET (fillfactor = 75);
ALTER TABLE pod_state SET (fillfactor = 75);
ALTER TABLE nodes SET (fillfactor = 75);
