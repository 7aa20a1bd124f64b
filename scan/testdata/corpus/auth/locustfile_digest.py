from locust import HttpUser, task

CREDS = ("svc-digest", "Dg7#kP2mQx9v")  ⟦cred⟧


class DigestUser(HttpUser):
    @task
    def me(self):
        self.client.get("/me", auth=CREDS)
