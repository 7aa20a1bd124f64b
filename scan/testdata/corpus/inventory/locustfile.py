from locust import HttpUser, task


class InventoryUser(HttpUser):
    token = None

    def on_start(self):
        resp = self.client.post("/oauth/token", data={
            "grant_type": "client_credentials",
            "client_id": "inventory-loadtest",
            "client_secret": "Qm8fT2zLx9Kc4VbN7pR1sW3y",  ⟦cred⟧
        })
        self.token = resp.json()["access_token"]

    @task
    def stock(self):
        self.client.get("/stock", headers={"Authorization": f"Bearer {self.token}"})
