from locust import HttpUser, task

self_headers = {}
self_headers["Authorization"] = "Bearer sk_live_ZnQ4YzE3ZDk5YjAyNGE3"  ⟦cred⟧


class HeaderUser(HttpUser):
    @task
    def me(self):
        self.client.get("/me", headers=self_headers)
