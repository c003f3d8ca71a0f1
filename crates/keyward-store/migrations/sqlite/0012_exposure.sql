-- A credential found exposed in public: when it was reported, and where it was found (a URL,
-- or how it was reported). Set once, by the first report.
ALTER TABLE credentials ADD COLUMN exposed_at INTEGER;
ALTER TABLE credentials ADD COLUMN exposed_source TEXT
    CHECK (exposed_source IS NULL OR length(exposed_source) BETWEEN 1 AND 500);
