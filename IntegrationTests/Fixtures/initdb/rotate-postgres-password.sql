-- wrong-password.yml: after init, the server's password for POSTGRES_USER is no longer the one
-- in the container's POSTGRES_PASSWORD (as when a password is rotated in the database only).
ALTER ROLE CURRENT_USER PASSWORD 'rotated-pg-pw';
