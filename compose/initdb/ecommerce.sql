-- The flows' own database, beside Prefect's, on the compose PostgreSQL (runs once, on an empty volume).
create database ecommerce;
