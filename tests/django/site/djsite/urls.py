from django.urls import path

from djsite import views

urlpatterns = [
    path("", views.home),
    path("enqueue/<str:name>", views.enqueue),
    path("aenqueue", views.aenqueue),
    path("rollback", views.rollback),
    path("commit", views.commit),
]
