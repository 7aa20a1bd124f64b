from locust import HttpUser, task


class SessionUser(HttpUser):
    def on_start(self):
        self.client.headers.update({"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsb2FkIn0.m2Kq9sZ0aX4bV7nC1dF8gH3jL6pR5tW"})  ⟦cred⟧

    @task
    def me(self):
        self.client.get("/me")
