#!/bin/sh
set -eu
export LOCUST_HOST=https://api.staging.internal
export API_TOKEN=sh_4Kp9Vn3Tr6Lq2Zx8Wm7B  ⟦cred⟧
PGPASSWORD='Sh3ll-Pg!x92' psql -h db.staging.internal -U loader -c 'select 1'  ⟦cred⟧
locust --headless -u 50 -r 5 -t 2m --host "https://runner:Rn8#zQ2xLm7w@api.staging.internal"  ⟦cred⟧
