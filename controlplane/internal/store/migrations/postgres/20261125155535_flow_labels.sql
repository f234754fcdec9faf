-- +goose Up
-- modify "tools" table
ALTER TABLE "tools" ADD COLUMN "flow_labels" jsonb NULL;

-- +goose Down
-- reverse: modify "tools" table
ALTER TABLE "tools" DROP COLUMN "flow_labels";
