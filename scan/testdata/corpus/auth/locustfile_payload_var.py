from locust import HttpUser, task

LOGIN = {
    "username": "perf-user-01",
    "password": "Wn5$rQ8vZ2kX",  ⟦cred⟧
}


class PayloadUser(HttpUser):
    def on_start(self):
        self.client.post("/login", json=LOGIN)

    @task
    def home(self):
        self.client.get("/")
