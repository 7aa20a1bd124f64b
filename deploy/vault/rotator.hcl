# swarmkey's rotator (swarmkey serve / run-due / rotate) on a KV v2 mount at
# secret/, for secrets under loadtest/ and their pending versions under
# swarmkey-pending/loadtest/ (the store's pending_prefix). Change the mount
# and the prefix to yours.

# The secrets readers read: current (latest version) and previous.
# create/update: promote writes the new current version (check-and-set).
path "secret/data/loadtest/*" {
  capabilities = ["create", "read", "update"]
}

# Versions and swarmkey's records (custom metadata) of those secrets.
path "secret/metadata/loadtest/*" {
  capabilities = ["read", "patch"]
}

# Retiring versions that fell off previous (delete; destroy with
# destroy_retired).
path "secret/delete/loadtest/*" {
  capabilities = ["update"]
}
path "secret/destroy/loadtest/*" {
  capabilities = ["update"]
}

# Pending versions, outside the readers' paths.
path "secret/data/swarmkey-pending/loadtest/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/swarmkey-pending/loadtest/*" {
  capabilities = ["read"]
}
# Discarding a pending version, and retiring promoted ones.
path "secret/delete/swarmkey-pending/loadtest/*" {
  capabilities = ["update"]
}
path "secret/destroy/swarmkey-pending/loadtest/*" {
  capabilities = ["update"]
}
