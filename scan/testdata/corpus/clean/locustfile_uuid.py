import uuid

from locust import HttpUser, task

TENANT = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
ORDER_IDS = ["9b2f1c4e-8a7d-4e6b-b1f3-2c5d8e9a0f17", "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"]


class OrderUser(HttpUser):
    @task
    def order(self):
        self.client.get(f"/tenants/{TENANT}/orders/{ORDER_IDS[0]}", headers={"X-Request-Id": str(uuid.uuid4())})
