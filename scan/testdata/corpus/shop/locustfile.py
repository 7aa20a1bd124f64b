from locust import HttpUser, task, between

API_TOKEN = "tk_4f9a2c7e1b8d3f6a0c5e9b2d7f1a4c8e"  ⟦cred⟧


class ShopUser(HttpUser):
    wait_time = between(1, 3)

    @task
    def browse(self):
        self.client.get("/products", headers={"Authorization": f"Bearer {API_TOKEN}"})
