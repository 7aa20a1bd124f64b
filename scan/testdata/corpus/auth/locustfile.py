from locust import HttpUser, task
from requests.auth import HTTPBasicAuth


class AuthUser(HttpUser):
    @task
    def me(self):
        self.client.get("/me", auth=HTTPBasicAuth("svc-load", "Tq4!zWm9pLx2"))  ⟦cred⟧
