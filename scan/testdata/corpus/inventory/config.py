# Settings shared by the inventory load tests.
BASE_URL = "https://inventory.staging.internal"
DB_PASSWORD = "inv-Sx82!qLm0"  ⟦cred⟧
REQUEST_TIMEOUT = 30
WAREHOUSE_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
