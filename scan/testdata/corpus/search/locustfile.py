from locust import HttpUser, task


class SearchUser(HttpUser):
    host = "https://loadtest:Pw7zXq4Ls9@search.staging.internal"  ⟦cred⟧

    @task
    def search(self):
        self.client.get("/q?term=shoes")
