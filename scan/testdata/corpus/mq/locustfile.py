import pika
from locust import User, task

AMQP_URL = "amqp://load:Mq7!pZx2Lk9w@rabbit.staging.internal:5672/%2f"  ⟦cred⟧


class MqUser(User):
    @task
    def publish(self):
        pika.BlockingConnection(pika.URLParameters(AMQP_URL))
