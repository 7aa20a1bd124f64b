from locust import HttpUser, task


class PositionalUser(HttpUser):
    def login(self, user, secret_word):
        self.client.post("/login", json={"user": user, "pass_word": secret_word})

    def on_start(self):
        self.login("perf-user", "Ps9!xQz2Lm7w")  ⟦cred⟧

    @task
    def t(self):
        self.client.get("/")
