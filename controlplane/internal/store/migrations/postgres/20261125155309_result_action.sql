-- +goose Up
-- modify "tenants" table
ALTER TABLE "tenants" ADD COLUMN "result_action" character varying NOT NULL DEFAULT 'redact';

-- +goose Down
-- reverse: modify "tenants" table
ALTER TABLE "tenants" DROP COLUMN "result_action";
