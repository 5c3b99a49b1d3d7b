fn main() {
    rankscope_app::start();
}
