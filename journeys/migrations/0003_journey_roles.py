"""Who may do what with journeys: viewing, drafting, and activating and managing.

Three groups, as Iterable has the roles. Staff are given one of them in the
admin (Users → a user → Groups):
- Journey viewers see journeys, their steps and enrollments.
- Journey drafters also create journeys and edit drafts, but cannot go live,
  pause or archive, nor edit a journey that is live.
- Journey managers may do everything with journeys.
"""

from django.db import migrations

VIEWERS, DRAFTERS, MANAGERS = "Journey viewers", "Journey drafters", "Journey managers"
STEP_MODELS = ["step", "sendmessagestep", "delaystep", "conditionstep", "exitstep"]
ALL_MODELS = ["journey", *STEP_MODELS, "enrollment", "steprun"]


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are made after migrations run; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perms(*codenames):
        found = list(
            Permission.objects.filter(content_type__app_label="journeys", codename__in=codenames)
        )
        missing = set(codenames) - {p.codename for p in found}
        assert not missing, f"missing permissions: {sorted(missing)}"
        return found

    view = [f"view_{model}" for model in ALL_MODELS]
    draft = [
        "add_journey",
        "change_journey",
        *(f"{action}_{model}" for model in STEP_MODELS for action in ("add", "change", "delete")),
    ]
    manage = [
        f"{action}_{model}" for model in ALL_MODELS for action in ("add", "change", "delete")
    ] + ["activate_journey"]
    for name, codenames in (
        (VIEWERS, view),
        (DRAFTERS, view + draft),
        (MANAGERS, view + manage),
    ):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*perms(*sorted(set(codenames))))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[VIEWERS, DRAFTERS, MANAGERS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("journeys", "0002_send_message_step"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="journey",
            options={
                "ordering": ["folder", "name"],
                "permissions": [
                    ("activate_journey", "Can go live with, pause and archive journeys")
                ],
            },
        ),
        migrations.RunPython(create_roles, remove_roles),
    ]
