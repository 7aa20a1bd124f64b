from locust import HttpUser, task


class GitHubUser(HttpUser):
    host = "https://api.github.com"

    @task
    def rate(self):
        self.client.get("/rate_limit", headers={"Authorization": "token @@GHP@@Ab3dE5gH7jK9mN1pQ3sT5vX7zB9dF1hJ3lN5"})  ⟦cred⟧
