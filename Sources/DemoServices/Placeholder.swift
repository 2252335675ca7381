enum DemoServicesPlaceholder {}
