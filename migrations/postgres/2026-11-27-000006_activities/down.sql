DROP TABLE activity_registrations;
DROP TABLE activities;
