-- +goose Up
-- modify "gateways" table
ALTER TABLE "gateways" ADD COLUMN "rate_principal_per_minute" bigint NOT NULL DEFAULT 0, ADD COLUMN "rate_tool_per_minute" bigint NOT NULL DEFAULT 0;

-- +goose Down
-- reverse: modify "gateways" table
ALTER TABLE "gateways" DROP COLUMN "rate_tool_per_minute", DROP COLUMN "rate_principal_per_minute";
