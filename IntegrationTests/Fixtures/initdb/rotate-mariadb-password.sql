ALTER USER 'root'@'localhost' IDENTIFIED BY 'rotated-root-pw';
ALTER USER 'root'@'%' IDENTIFIED BY 'rotated-root-pw';
