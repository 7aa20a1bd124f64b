from locust import HttpUser, task


def login(client, user="perf", password="Pf9-Lq2!Zx7m"):  ⟦cred⟧
    return client.post("/login", json={"user": user, "password": password})


class U(HttpUser):
    def on_start(self):
        login(self.client)

    @task
    def t(self):
        self.client.get("/")
