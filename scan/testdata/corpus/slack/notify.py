import requests

SLACK_TOKEN = "@@XOXB@@2048117231-5873349231-Qz8Lm2Xw9Kp4Vn7Bt1Rc5Ys3"  ⟦cred⟧


def notify(text):
    requests.post("https://slack.com/api/chat.postMessage", data={"channel": "#load", "text": text},
                  headers={"Authorization": f"Bearer {SLACK_TOKEN}"})
