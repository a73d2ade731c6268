"""Remember the language of what reaches a person away from the pages (emails, pushes)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0014_away"),
    ]

    operations = [
        migrations.AddField(
            model_name="usersettings",
            name="language",
            field=models.CharField(blank=True, db_default="", default="", max_length=16),
        ),
        migrations.AddField(
            model_name="usersettings",
            name="language_chosen",
            field=models.BooleanField(db_default=False, default=False),
        ),
    ]
