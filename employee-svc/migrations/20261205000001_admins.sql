-- Admins are employees with role 'admin': they sign in to the admin console with their email and
-- password. A one-time password must be changed at the next sign-in; credentials_version moves on
-- with every password change and with the loss of the role, ending sessions made before.
ALTER TABLE employees
    ADD COLUMN must_change_password boolean NOT NULL DEFAULT false,
    ADD COLUMN credentials_version  bigint  NOT NULL DEFAULT 1,
    ADD CONSTRAINT employees_role_check CHECK (role IN ('employee', 'admin'));

-- Sign-in looks an email up across organizations.
CREATE INDEX employees_admin_email_idx ON employees (lower(email)) WHERE role = 'admin';

-- Pages of an organization's employees, in id order (the console's Employees page).
CREATE INDEX employees_org_id_idx ON employees (org_id, id);
