# A load test's reader (a Locust worker, `vault kv get`): the current
# credential, and previous by version number while a grace period lasts.
path "secret/data/loadtest/*" {
  capabilities = ["read"]
}

# Pending credentials are not for readers, even if a broader policy of
# theirs covers the mount: deny wins over every grant in Vault and OpenBao.
path "secret/data/swarmkey-pending/*" {
  capabilities = ["deny"]
}
