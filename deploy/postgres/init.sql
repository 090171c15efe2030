-- One database per service on one server (DATABASE_URL=postgresql+psycopg://.../callcenter_{service}).
CREATE DATABASE callcenter_gateway;
CREATE DATABASE callcenter_tickets;
CREATE DATABASE callcenter_callrouting;
CREATE DATABASE callcenter_surveys;
