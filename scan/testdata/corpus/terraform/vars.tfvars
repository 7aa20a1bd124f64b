region      = "eu-west-1"
db_password = "Tf-Pg!2x9QzL8"  ⟦cred⟧
instance    = "t3.large"
