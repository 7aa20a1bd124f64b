#!/bin/bash
curl -fsS -H "Authorization: Bearer cu_9Vn3Tr6Lq2Zx8Wm7Kp4B" https://api.staging.internal/health  ⟦cred⟧
curl -fsS -H "X-Request-Id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301" https://api.staging.internal/ready
