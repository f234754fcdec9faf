-- +goose Up
-- modify "agents" table
ALTER TABLE "agents" ADD COLUMN "previous_cert_fingerprint" character varying NULL, ADD COLUMN "cert_expires_at" timestamptz NULL, ADD COLUMN "renewed_at" timestamptz NULL, ADD COLUMN "revoked_at" timestamptz NULL;

-- +goose Down
-- reverse: modify "agents" table
ALTER TABLE "agents" DROP COLUMN "revoked_at", DROP COLUMN "renewed_at", DROP COLUMN "cert_expires_at", DROP COLUMN "previous_cert_fingerprint";
