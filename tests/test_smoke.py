from django.urls import reverse


def test_home_page_explains_the_service(client, db):
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert "Spotify only remembers your last 50 plays" in response.content.decode()
