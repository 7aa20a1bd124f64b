from locust import HttpUser, task


class LoginUser(HttpUser):
    def on_start(self):
        self.client.post("/api/login", json={"email": "load@shop.io", "password": "Kx9!mQ2v-Lp7w"})  ⟦cred⟧

    @task
    def cart(self):
        self.client.get("/cart")
