-- +goose NO TRANSACTION
-- +goose Up
-- disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- create "new_call_events" table
CREATE TABLE `new_call_events` (`id` text NOT NULL, `gateway_id` uuid NOT NULL, `agent_id` uuid NOT NULL, `time` datetime NOT NULL, `principal` text NOT NULL DEFAULT (''), `virtual_server` text NOT NULL DEFAULT (''), `upstream` text NOT NULL DEFAULT (''), `method` text NOT NULL, `tool` text NOT NULL DEFAULT (''), `decision` text NOT NULL, `reason` text NOT NULL DEFAULT (''), `latency_micros` integer NOT NULL, `request_bytes` integer NOT NULL, `response_bytes` integer NOT NULL, `error` text NOT NULL DEFAULT (''), `upstream_identity` text NOT NULL DEFAULT (''), `tenant_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `call_events_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION);
-- copy rows from old table "call_events" to new temporary table "new_call_events"
INSERT INTO `new_call_events` (`id`, `gateway_id`, `agent_id`, `time`, `principal`, `virtual_server`, `upstream`, `method`, `tool`, `decision`, `reason`, `latency_micros`, `request_bytes`, `response_bytes`, `error`, `tenant_id`) SELECT `id`, `gateway_id`, `agent_id`, `time`, `principal`, `virtual_server`, `upstream`, `method`, `tool`, `decision`, `reason`, `latency_micros`, `request_bytes`, `response_bytes`, `error`, `tenant_id` FROM `call_events`;
-- drop "call_events" table after copying rows
DROP TABLE `call_events`;
-- rename temporary table "new_call_events" to "call_events"
ALTER TABLE `new_call_events` RENAME TO `call_events`;
-- create index "callevent_tenant_id" to table: "call_events"
CREATE INDEX `callevent_tenant_id` ON `call_events` (`tenant_id`);
-- create index "callevent_tenant_id_time" to table: "call_events"
CREATE INDEX `callevent_tenant_id_time` ON `call_events` (`tenant_id`, `time`);
-- create index "callevent_gateway_id_time" to table: "call_events"
CREATE INDEX `callevent_gateway_id_time` ON `call_events` (`gateway_id`, `time`);
-- create "new_upstreams" table
CREATE TABLE `new_upstreams` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `name` text NOT NULL, `transport` text NOT NULL, `url` text NOT NULL DEFAULT (''), `command` text NOT NULL DEFAULT (''), `args` json NULL, `labels` json NULL, `package_ecosystem` text NOT NULL DEFAULT (''), `package_name` text NOT NULL DEFAULT (''), `package_version` text NOT NULL DEFAULT (''), `package_integrity` text NOT NULL DEFAULT (''), `package_bin` text NOT NULL DEFAULT (''), `catalog_entry` text NOT NULL DEFAULT (''), `credential_ref` text NOT NULL DEFAULT (''), `credential_header` text NOT NULL DEFAULT (''), `auth_mode` text NOT NULL DEFAULT ('static'), `oauth_client_id` text NOT NULL DEFAULT (''), `oauth_client_secret_ref` text NOT NULL DEFAULT (''), `oauth_scopes` json NULL, `oauth_issuer` text NOT NULL DEFAULT (''), `oauth_resource` text NOT NULL DEFAULT (''), `deny_sampling` bool NOT NULL DEFAULT (false), `deny_elicitation` bool NOT NULL DEFAULT (false), `deny_roots` bool NOT NULL DEFAULT (false), `reachable` bool NOT NULL DEFAULT (false), `last_error` text NOT NULL DEFAULT (''), `gateway_id` uuid NOT NULL, `tenant_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `upstreams_gateways_upstreams` FOREIGN KEY (`gateway_id`) REFERENCES `gateways` (`id`) ON DELETE NO ACTION, CONSTRAINT `upstreams_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION);
-- copy rows from old table "upstreams" to new temporary table "new_upstreams"
INSERT INTO `new_upstreams` (`id`, `created_at`, `updated_at`, `name`, `transport`, `url`, `command`, `args`, `labels`, `package_ecosystem`, `package_name`, `package_version`, `package_integrity`, `package_bin`, `catalog_entry`, `credential_ref`, `credential_header`, `deny_sampling`, `deny_elicitation`, `deny_roots`, `reachable`, `last_error`, `gateway_id`, `tenant_id`) SELECT `id`, `created_at`, `updated_at`, `name`, `transport`, `url`, `command`, `args`, `labels`, `package_ecosystem`, `package_name`, `package_version`, `package_integrity`, `package_bin`, `catalog_entry`, `credential_ref`, `credential_header`, `deny_sampling`, `deny_elicitation`, `deny_roots`, `reachable`, `last_error`, `gateway_id`, `tenant_id` FROM `upstreams`;
-- drop "upstreams" table after copying rows
DROP TABLE `upstreams`;
-- rename temporary table "new_upstreams" to "upstreams"
ALTER TABLE `new_upstreams` RENAME TO `upstreams`;
-- create index "upstream_tenant_id" to table: "upstreams"
CREATE INDEX `upstream_tenant_id` ON `upstreams` (`tenant_id`);
-- create index "upstream_gateway_id_name" to table: "upstreams"
CREATE UNIQUE INDEX `upstream_gateway_id_name` ON `upstreams` (`gateway_id`, `name`);
-- enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;

-- +goose Down
-- reverse: create index "upstream_gateway_id_name" to table: "upstreams"
DROP INDEX `upstream_gateway_id_name`;
-- reverse: create index "upstream_tenant_id" to table: "upstreams"
DROP INDEX `upstream_tenant_id`;
-- reverse: create "new_upstreams" table
DROP TABLE `new_upstreams`;
-- reverse: create index "callevent_gateway_id_time" to table: "call_events"
DROP INDEX `callevent_gateway_id_time`;
-- reverse: create index "callevent_tenant_id_time" to table: "call_events"
DROP INDEX `callevent_tenant_id_time`;
-- reverse: create index "callevent_tenant_id" to table: "call_events"
DROP INDEX `callevent_tenant_id`;
-- reverse: create "new_call_events" table
DROP TABLE `new_call_events`;
