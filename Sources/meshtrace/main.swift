print("meshtrace")
