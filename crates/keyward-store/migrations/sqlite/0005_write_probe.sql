-- One row that readiness checks rewrite after a write failed (a full disk, say), to tell
-- whether the database can write again.
CREATE TABLE keyward_write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
