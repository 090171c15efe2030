"""The tickets service's use cases: each runs in one unit of work and commits once."""

from __future__ import annotations

from shared.unit_of_work import UnitOfWork

from .models import Customer


def create_customer(uow: UnitOfWork, *, name: str, phone: str | None, email: str | None) -> Customer:
    customer = Customer(name=name.strip(), phone=phone, email=email)
    uow.session.add(customer)
    uow.session.flush()
    uow.publish(
        "customer.created",
        {"customer_id": customer.id, "name": customer.name, "phone": customer.phone, "email": customer.email},
    )
    uow.commit()
    return customer


def get_customer(uow: UnitOfWork, customer_id: str) -> Customer | None:
    return uow.session.get(Customer, customer_id)
