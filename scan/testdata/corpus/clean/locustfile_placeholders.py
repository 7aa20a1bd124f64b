from locust import HttpUser, task

API_KEY = "changeme"
PASSWORD = "<your-password>"
TOKEN = "YOUR_TOKEN_HERE"


class PlaceholderUser(HttpUser):
    @task
    def t(self):
        self.client.get("/", headers={"Authorization": "Bearer ${TOKEN}"})
        self.client.post("/login", json={"username": "example", "password": "********"})
