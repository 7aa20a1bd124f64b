from locust import HttpUser, task

QUERY = "{ viewer { id name } }"


class GraphUser(HttpUser):
    access_token = "gq_5Rk2Lm9Zx7Qp3Vn8Ws1Ty4"  ⟦cred⟧

    @task
    def viewer(self):
        self.client.post(
            "/graphql",
            json={"query": QUERY},
            headers={"Authorization": "Bearer " + self.access_token},
        )
