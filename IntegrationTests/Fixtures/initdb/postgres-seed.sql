-- Seed data for the PostgreSQL fixtures; runs once, as POSTGRES_USER in POSTGRES_DB.
CREATE TABLE stackvault_seed (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO stackvault_seed VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma ünïcode');
