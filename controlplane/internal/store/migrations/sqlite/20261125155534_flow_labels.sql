-- +goose Up
-- add column "flow_labels" to table: "tools"
ALTER TABLE `tools` ADD COLUMN `flow_labels` json NULL;

-- +goose Down
-- reverse: add column "flow_labels" to table: "tools"
ALTER TABLE `tools` DROP COLUMN `flow_labels`;
