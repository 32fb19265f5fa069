"""Templates saved before the preheader became plain text, and before header
fields refused line breaks: bring their stored values in line."""

from django.db import migrations

LINE_BREAKS = str.maketrans({"\r": " ", "\n": " "})


def clean_stored_templates(apps, schema_editor):
    from messaging.sanitizing import plain_text

    Template = apps.get_model("messaging", "Template")
    for template in Template.objects.iterator():
        before = (template.preheader, template.from_name, template.subject,
                  template.from_email, template.reply_to)
        template.preheader = plain_text(template.preheader)
        template.from_name = " ".join(template.from_name.translate(LINE_BREAKS).split())
        template.subject = template.subject.translate(LINE_BREAKS)
        template.from_email = template.from_email.translate(LINE_BREAKS).replace(" ", "")
        template.reply_to = template.reply_to.translate(LINE_BREAKS).replace(" ", "")
        after = (template.preheader, template.from_name, template.subject,
                 template.from_email, template.reply_to)
        if after != before:
            template.save(update_fields=["preheader", "from_name", "subject", "from_email",
                                         "reply_to"])


class Migration(migrations.Migration):

    dependencies = [
        ("messaging", "0005_in_app_messages"),
    ]

    operations = [
        migrations.RunPython(clean_stored_templates, migrations.RunPython.noop, elidable=True),
    ]
