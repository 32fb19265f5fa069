"""Shared by the migrations that add a step type: the journey roles (0003)
cover each new type as they do the others. (A leading underscore keeps this
module out of the migration graph.)"""

ROLES = (
    ("Journey viewers", ("view",)),
    ("Journey drafters", ("view", "add", "change", "delete")),
    ("Journey managers", ("view", "add", "change", "delete")),
)


def grant_step_type(apps, *model_names):
    """Give the journey roles their permissions on the step types `model_names`."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, actions in ROLES:
        group = Group.objects.filter(name=name).first()
        if group is None:
            continue
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="journeys",
                codename__in=[f"{a}_{m}" for a in actions for m in model_names],
            )
        )
