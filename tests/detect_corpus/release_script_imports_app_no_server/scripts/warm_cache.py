from app.main import app


def main() -> None:
    print("routes:", len(app.routes))


if __name__ == "__main__":
    main()
